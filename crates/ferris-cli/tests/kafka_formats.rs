//! Kafka message formats and metadata over a real Kafka-protocol broker: Avro in and out
//! (with a bad message dead-lettered at its topic/partition/offset), correlation id and
//! `traceparent` headers on written messages, and the Kafka timestamp as event time.

mod kafka_support;

use arrow::array::{Decimal128Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use ferris_connectors::formats::avro::AvroCodec;
use ferris_connectors::formats::decode::RowDecoder;
use kafka_support::*;
use std::sync::Arc;

const IN_SCHEMA: &str = r#"{"type":"record","name":"trade","fields":[
  {"name":"id","type":"long"},
  {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":4}}]}"#;
const OUT_SCHEMA: &str = r#"{"type":"record","name":"out","fields":[
  {"name":"id","type":"long"},
  {"name":"doubled","type":["null",{"type":"bytes","logicalType":"decimal","precision":12,"scale":4}]}]}"#;

#[test]
fn avro_in_and_out_with_trace_headers_and_bad_messages_dead_lettered() {
    let broker = Broker::started();
    broker.create_topic("avro_in", 1);
    broker.create_topic("avro_out", 1);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("price", DataType::Decimal128(10, 4), false),
    ]));
    let codec = AvroCodec::new(IN_SCHEMA, schema.clone()).expect("codec");
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(
                Decimal128Array::from(vec![123_456_789, 5, -10_001])
                    .with_precision_and_scale(10, 4)
                    .expect("decimal"),
            ),
        ],
    )
    .expect("batch");
    let mut messages = Vec::new();
    for row in 0..3 {
        let mut payload = Vec::new();
        codec
            .encode_row(&batch, row, &mut payload)
            .expect("encoded");
        messages.push((format!("k{row}"), payload, None));
        if row == 0 {
            // Offset 1: not Avro of that schema (truncated).
            messages.push(("bad".to_string(), vec![0x02, 0x08], None));
        }
    }
    broker.produce_raw("avro_in", &messages);
    let dir = tempfile::tempdir().expect("tempdir");
    let schema_file = dir.path().join("out.avsc");
    std::fs::write(&schema_file, OUT_SCHEMA).expect("schema file");
    let dlq = dir.path().join("dlq.jsonl");
    let sql = format!(
        "CREATE STREAM trades (id BIGINT, price DECIMAL(10,4))
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'avro_in',
               'format' = 'avro', 'avro.schema' = '{IN_SCHEMA}',
               'scan.startup.mode' = 'earliest', 'scan.bounded' = 'latest',
               'error.strategy' = 'dead_letter', 'dead_letter.path' = '{d}');
         CREATE STREAM out WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
             'topic' = 'avro_out', 'format' = 'avro', 'avro.schema.file' = '{f}',
             'headers' = 'trace') AS
           SELECT id, price * 2 AS doubled FROM trades;",
        b = broker.address,
        d = dlq.display(),
        f = schema_file.display(),
    );
    cli_ok(&sql, &[]);
    let records = broker.consume_records("avro_out", 1);
    let out_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("doubled", DataType::Decimal128(12, 4), true),
    ]));
    let reader = AvroCodec::new(OUT_SCHEMA, out_schema.clone()).expect("reader");
    let mut decoder = RowDecoder::new(out_schema).expect("decoder");
    for r in &records {
        reader.decode(&r.bytes, &mut decoder).expect("valid Avro");
    }
    let got = decoder.finish().expect("rows");
    assert_eq!(
        arrow::util::pretty::pretty_format_batches(&[got])
            .expect("pretty")
            .to_string(),
        "+----+------------+\n\
         | id | doubled    |\n\
         +----+------------+\n\
         | 1  | 24691.3578 |\n\
         | 2  | 0.0010     |\n\
         | 3  | -2.0002    |\n\
         +----+------------+"
    );
    // Every message carries its batch's correlation id and a W3C traceparent.
    for r in &records {
        let header = |k: &str| {
            r.headers
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let correlation = header("correlation_id");
        assert!(
            correlation.ends_with("-trades-0") && correlation.len() == 8 + "-trades-0".len(),
            "{correlation}"
        );
        let traceparent = header("traceparent");
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            vec![2, 32, 16, 2],
            "{traceparent}"
        );
        // Version 00; flags 00: without an OTLP endpoint no batch is sampled, and the
        // header says so (W3C trace-flags bit 0).
        assert_eq!((parts[0], parts[3]), ("00", "00"));
    }
    let dead: Vec<serde_json::Value> = std::fs::read_to_string(&dlq)
        .expect("dead letters")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["position"], "avro_in/0/1");
    assert!(
        dead[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("truncated"),
        "{}",
        dead[0]
    );
}

#[test]
fn the_kafka_timestamp_can_be_the_event_time() {
    let broker = Broker::started();
    broker.create_topic("clicks", 2);
    // 90 clicks, one per second from 2024-01-01T00:00:00Z, spread over two partitions; the
    // payload has no time, the message timestamp has.
    let base = 1_704_067_200_000i64;
    let messages: Vec<(String, Vec<u8>, Option<i64>)> = (0..90i64)
        .map(|i| {
            let user = ["ann", "bob", "cyd"][(i % 3) as usize];
            (
                user.to_string(),
                format!("{{\"user\":\"{user}\"}}").into_bytes(),
                Some(base + i * 1000),
            )
        })
        .collect();
    broker.produce_raw("clicks", &messages);
    let sql = format!(
        "CREATE STREAM clicks (user VARCHAR, ts TIMESTAMP,
           WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{}', 'topic' = 'clicks',
               'timestamp.field' = 'ts', 'scan.startup.mode' = 'earliest',
               'scan.bounded' = 'latest');
         SELECT user, _window_start AS ws, COUNT(*) AS n FROM clicks
         GROUP BY user WINDOW TUMBLING(1m);",
        broker.address
    );
    let out = cli_ok(&sql, &[]);
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            r#"{"user":"ann","ws":"2024-01-01T00:00:00.000Z","n":20}"#,
            r#"{"user":"ann","ws":"2024-01-01T00:01:00.000Z","n":10}"#,
            r#"{"user":"bob","ws":"2024-01-01T00:00:00.000Z","n":20}"#,
            r#"{"user":"bob","ws":"2024-01-01T00:01:00.000Z","n":10}"#,
            r#"{"user":"cyd","ws":"2024-01-01T00:00:00.000Z","n":20}"#,
            r#"{"user":"cyd","ws":"2024-01-01T00:01:00.000Z","n":10}"#,
        ]
    );
}
