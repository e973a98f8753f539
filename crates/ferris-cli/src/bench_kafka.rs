//! `ferris-cli bench --case kafka`: Kafka → filter/projection → Kafka with JSON, against a
//! plain rdkafka consume-and-produce loop (no SQL) on the same local broker in the same run.
//! Starts a local `tansu` broker ([`crate::tansu::Broker`]).

use crate::tansu::Broker;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 6;

fn producer(address: &str) -> anyhow::Result<BaseProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("linger.ms", "5")
        .create()
        .map_err(anyhow::Error::from)
}

fn send(p: &BaseProducer, topic: &str, key: &[u8], payload: &[u8]) {
    send_record(p, BaseRecord::to(topic).key(key).payload(payload));
}

/// Queues `record`, serving the producer while its queue is full.
pub(crate) fn send_record(p: &BaseProducer, mut record: BaseRecord<'_, [u8], [u8]>) {
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((_, r)) => {
                record = r;
                p.poll(Duration::from_millis(5));
            }
        }
    }
}

/// The baseline: read every message of `input` (up to its end offsets) and produce the
/// payload unchanged to `output`, with no decoding.
fn plain_loop(address: &str, input: &str, output: &str) -> anyhow::Result<(u64, Duration)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("group.id", "bench-baseline")
        .set("enable.auto.commit", "false")
        .create()?;
    let started = Instant::now();
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0i64;
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(input, p, Offset::Beginning)?;
        let (low, high) = consumer.fetch_watermarks(input, p, Duration::from_secs(10))?;
        remaining += high - low;
    }
    consumer.assign(&tpl)?;
    let out = producer(address)?;
    let mut n = 0u64;
    while remaining > 0 {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                send(
                    &out,
                    output,
                    m.key().unwrap_or_default(),
                    m.payload().unwrap_or_default(),
                );
                remaining -= 1;
                n += 1;
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    out.flush(Duration::from_secs(60))?;
    Ok((n, started.elapsed()))
}

/// Runs the Kafka case with `rows` messages; prints the figures.
pub fn kafka_case(rows: u64, report: &dyn Fn(&str)) -> anyhow::Result<()> {
    let broker = Broker::start()?;
    broker.create_topics(
        &[
            "bench-in",
            "bench-base",
            "bench-out-1",
            "bench-out-2",
            "bench-out-2t",
        ],
        PARTITIONS,
    )?;
    let p = producer(&broker.address)?;
    let symbols = ["AAPL", "MSFT", "GOOG", "AMZN", "TSLA"];
    for i in 0..rows {
        let s = symbols[(i % 5) as usize];
        let payload = format!(
            "{{\"symbol\":\"{s}\",\"price\":{}.{:04},\"volume\":{},\"ts\":{}}}",
            50 + i % 200,
            (i * 7919) % 10_000,
            1 + (i * 13) % 1000,
            1_704_067_200_000 + i
        );
        send(&p, "bench-in", s.as_bytes(), payload.as_bytes());
    }
    p.flush(Duration::from_secs(120))?;
    drop(p);
    let (n, base) = plain_loop(&broker.address, "bench-in", "bench-base")?;
    let base_rate = n as f64 / base.as_secs_f64();
    report(&format!(
        "baseline  rdkafka consume+produce loop      {base_rate:>12.0} rows/s ({n} messages, tansu on loopback)"
    ));
    // The last case writes the correlation id and traceparent headers ('headers' = 'trace').
    for (parallelism, trace) in [(1, false), (2, false), (2, true)] {
        let (suffix, headers) = if trace { ("t", "trace") } else { ("", "none") };
        let sql = format!(
            "CREATE STREAM trades (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP)
             WITH ('connector'='kafka', 'bootstrap.servers'='{a}', 'topic'='bench-in',
                   'group.id'='bench-{parallelism}{suffix}', 'scan.startup.mode'='earliest',
                   'scan.bounded'='latest', 'batch.size'='8192');
             CREATE STREAM out WITH ('connector'='kafka', 'bootstrap.servers'='{a}',
                 'topic'='bench-out-{parallelism}{suffix}', 'key'='symbol', 'headers'='{headers}',
                 'kafka.linger.ms'='5') AS
               SELECT symbol, price, volume, price * volume AS notional FROM trades
               WHERE volume >= 0;",
            a = broker.address
        );
        let app =
            ferris_plan::plan_application(&sql).map_err(|e| anyhow::anyhow!(e.render(&sql)))?;
        let config = ferris_runtime::JobConfig {
            parallelism,
            channel_capacity_rows: 32_768,
            ..ferris_runtime::JobConfig::default()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let started = Instant::now();
        let job = ferris_engine::build_job(&app, config, std::path::Path::new("."))
            .map_err(|e| anyhow::anyhow!(e.render(&sql)))?;
        let result = runtime.block_on(ferris_runtime::run_job(
            job,
            ferris_observe::Registry::new(),
            ferris_runtime::Shutdown::new(),
        ))?;
        let d = started.elapsed();
        let written = result.queries.first().map(|q| q.written).unwrap_or(0);
        let rate = rows as f64 / d.as_secs_f64();
        let case = format!("p={parallelism}{}", if trace { " +headers" } else { "" });
        report(&format!(
            "kafka      Kafka -> filter/project -> Kafka {case:<13} {rate:>8.0} rows/s  \
             ({written} written; {:.2} of the loop's rate; target >= 0.8 at p=2)",
            rate / base_rate
        ));
    }
    Ok(())
}
