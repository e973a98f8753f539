//! Criterion benches of whole pipelines: datagen trades → query → blackhole sink.
//! Baselines in the same run: draining the generator alone, and a passthrough query.
//! Run: cargo bench -p ferris-cli (one group: `cargo bench -p ferris-cli -- streaming`).

#[path = "../src/cases.rs"]
#[allow(dead_code)]
mod cases;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferris_observe::Registry;
use ferris_runtime::{JobConfig, Shutdown, SourcePoll};
use std::path::Path;

const ROWS: u64 = 500_000;

fn source_sql() -> String {
    format!(
        "CREATE STREAM trades (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP)
         WITH ('connector'='datagen', 'generator'='trades', 'events'='{ROWS}', 'batch.size'='8192');"
    )
}

fn run(sql: &str, parallelism: usize, rt: &tokio::runtime::Runtime) {
    run_in(sql, parallelism, rt, Path::new("."))
}

fn pipelines(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("trades");
    group.throughput(Throughput::Elements(ROWS));
    group.sample_size(10);
    group.bench_function("generator_alone_baseline", |b| {
        b.iter(|| {
            let app = ferris_plan::plan_application(&source_sql()).expect("plans");
            let d = &app.sources[0];
            let mut s = ferris_connectors::create_source(
                &d.name,
                d.schema.clone(),
                &d.connector,
                Path::new("."),
            )
            .expect("source");
            while !matches!(s.poll(8192).expect("poll"), SourcePoll::End) {}
        })
    });
    let passthrough = format!(
        "{} CREATE STREAM out WITH ('connector'='blackhole') AS SELECT * FROM trades;",
        source_sql()
    );
    let filter = format!(
        "{} CREATE STREAM out WITH ('connector'='blackhole') AS SELECT symbol, price, volume, \
         price * volume AS notional, price * 1.0025 AS with_fee FROM trades WHERE price > 100 AND volume >= 10;",
        source_sql()
    );
    for p in [1, 2] {
        group.bench_function(format!("passthrough_p{p}"), |b| {
            b.iter(|| run(&passthrough, p, &rt))
        });
        group.bench_function(format!("filter_project_decimal_p{p}"), |b| {
            b.iter(|| run(&filter, p, &rt))
        });
    }
    group.finish();
}

/// The streaming cases (windows, emit modes, joins, OVER) at parallelism 1 and 2.
fn streaming(c: &mut Criterion) {
    const STREAM_ROWS: u64 = 200_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("ferris-criterion-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut group = c.benchmark_group("streaming");
    group.sample_size(10);
    // Same-run baseline: the same generated rows through `SELECT *`.
    let baseline = format!(
        "CREATE STREAM trades (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
           ts TIMESTAMP) WITH ('connector'='datagen', 'generator'='trades',
           'events'='{STREAM_ROWS}', 'batch.size'='8192', 'interval.ms'='10');
         CREATE STREAM out WITH ('connector'='blackhole') AS SELECT * FROM trades;"
    );
    group.throughput(Throughput::Elements(STREAM_ROWS));
    group.bench_function("passthrough_baseline_p1", |b| {
        b.iter(|| run_in(&baseline, 1, &rt, &dir))
    });
    for case in cases::streaming_cases(STREAM_ROWS, 8192) {
        for (name, content) in &case.files {
            std::fs::write(dir.join(name), content).expect("write case file");
        }
        // The interval join reads two streams of STREAM_ROWS rows each.
        let rows = if case.name == "interval" {
            2 * STREAM_ROWS
        } else {
            STREAM_ROWS
        };
        group.throughput(Throughput::Elements(rows));
        for p in [1, 2] {
            group.bench_function(format!("{}_p{p}", case.name), |b| {
                b.iter(|| run_in(&case.sql, p, &rt, &dir))
            });
        }
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn run_in(sql: &str, parallelism: usize, rt: &tokio::runtime::Runtime, dir: &Path) {
    let app = ferris_plan::plan_application(sql).expect("plans");
    let config = JobConfig {
        parallelism,
        channel_capacity_rows: 32_768,
        ..JobConfig::default()
    };
    let job = ferris_engine::build_job(&app, config, dir).expect("builds");
    rt.block_on(ferris_runtime::run_job(
        job,
        Registry::new(),
        Shutdown::new(),
    ))
    .expect("runs");
}

criterion_group!(benches, pipelines, streaming);
criterion_main!(benches);
