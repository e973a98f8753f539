//! `ferris-cli bench --case kafka-keyed`: a windowed GROUP BY over a 6-partition topic in
//! one process, read directly (`'partitions' = 'all'`, the baseline) and through the
//! query's repartition topic (`'partitions' = 'group'`, as across processes), on the same
//! local broker in the same run. Starts a local `tansu` broker ([`crate::tansu::Broker`]).

use crate::tansu::Broker;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 6;
const SYMBOLS: [&str; 5] = ["AAPL", "MSFT", "GOOG", "AMZN", "TSLA"];

/// Produces `rows` trades, one per millisecond of event time, round-robin over the
/// partitions, then one row per partition an hour later that closes every window.
fn produce(address: &str, rows: u64) -> anyhow::Result<()> {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("linger.ms", "5")
        .create()?;
    let base = 1_704_067_200_000u64;
    let last = (0..PARTITIONS as u64).map(|p| (rows + p, "END", base + rows + 3_600_000));
    let trades = (0..rows).map(|i| (i, SYMBOLS[(i % 5) as usize], base + i));
    for (i, symbol, ts) in trades.chain(last) {
        let payload = format!(
            "{{\"symbol\":\"{symbol}\",\"price\":{}.{:04},\"volume\":{},\"ts\":{ts}}}",
            50 + i % 200,
            (i * 7919) % 10_000,
            1 + (i * 13) % 1000
        );
        let record = BaseRecord::<[u8], [u8]>::to("keyed-in")
            .partition((i % PARTITIONS as u64) as i32)
            .payload(payload.as_bytes());
        crate::bench_kafka::send_record(&p, record);
    }
    p.flush(Duration::from_secs(120))
        .map_err(anyhow::Error::from)
}

/// Messages in `topic` (the sum of its partitions' high watermarks).
fn messages(consumer: &BaseConsumer, topic: &str, partitions: i32) -> anyhow::Result<i64> {
    let mut n = 0;
    for p in 0..partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        n += high;
    }
    Ok(n)
}

/// The windowed GROUP BY reading `keyed-in` in mode `partitions` and writing `output`.
fn sql(address: &str, partitions: &str, output: &str) -> String {
    let bounded = if partitions == "all" {
        ", 'scan.bounded'='latest'"
    } else {
        ""
    };
    format!(
        "CREATE STREAM trades (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP,
           WATERMARK FOR ts AS ts)
         WITH ('connector'='kafka', 'bootstrap.servers'='{address}', 'topic'='keyed-in',
               'group.id'='bench-{output}', 'partitions'='{partitions}',
               'scan.startup.mode'='earliest', 'batch.size'='8192' {bounded});
         CREATE STREAM {output} WITH ('connector'='kafka', 'bootstrap.servers'='{address}',
             'topic'='{output}', 'kafka.linger.ms'='5') AS
           SELECT symbol, COUNT(*) AS n, SUM(price * volume) AS notional
           FROM trades GROUP BY symbol WINDOW TUMBLING(1s);"
    )
}

/// Runs the keyed Kafka case with `rows` messages; prints the figures.
pub fn kafka_keyed_case(rows: u64, report: &dyn Fn(&str)) -> anyhow::Result<()> {
    let broker = Broker::start()?;
    broker.create_topics(&["keyed-in"], PARTITIONS)?;
    broker.create_topics(&["direct", "repartitioned"], 3)?;
    produce(&broker.address, rows)?;
    // Every 1 s window of every symbol (the windows of the final rows stay open in group
    // mode, which never ends by itself).
    let windows = (rows.div_ceil(1000) * SYMBOLS.len() as u64) as i64;
    let watcher: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.address)
        .create()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut baseline = None;
    for (partitions, output) in [("all", "direct"), ("group", "repartitioned")] {
        let text = sql(&broker.address, partitions, output);
        let app =
            ferris_plan::plan_application(&text).map_err(|e| anyhow::anyhow!(e.render(&text)))?;
        let config = ferris_runtime::JobConfig {
            parallelism: 2,
            channel_capacity_rows: 32_768,
            ..ferris_runtime::JobConfig::default()
        };
        let started = Instant::now();
        let job = ferris_engine::build_job(&app, config, std::path::Path::new("."))
            .map_err(|e| anyhow::anyhow!(e.render(&text)))?;
        let shutdown = ferris_runtime::Shutdown::new();
        let running = runtime.spawn(ferris_runtime::run_job(
            job,
            ferris_observe::Registry::new(),
            shutdown.clone(),
        ));
        while messages(&watcher, output, 3)? < windows {
            if started.elapsed() > Duration::from_secs(300) || running.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let elapsed = started.elapsed();
        shutdown.trigger();
        runtime.block_on(running)??;
        let written = messages(&watcher, output, 3)?;
        if written < windows {
            return Err(anyhow::anyhow!(
                "{output}: {written} of {windows} windows written"
            ));
        }
        let rate = rows as f64 / elapsed.as_secs_f64();
        let ratio = match baseline {
            None => {
                baseline = Some(rate);
                "the baseline".to_string()
            }
            Some(b) => format!("{:.2} of the direct read", rate / b),
        };
        report(&format!(
            "kafka-keyed GROUP BY TUMBLING(1s), p=2, {partitions:<5} {rate:>10.0} rows/s \
             ({windows} windows; {ratio})"
        ));
    }
    Ok(())
}
