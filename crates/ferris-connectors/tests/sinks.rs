//! The file, stdout and blackhole sinks.

mod common;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array, RecordBatch,
    StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, TimeUnit};
use common::*;
use ferris_connectors::{StdoutSink, create_sink};
use ferris_runtime::Sink;
use std::io::Write;
use std::sync::{Arc, Mutex};

fn batch() -> RecordBatch {
    let s = schema(&[
        ("symbol", DataType::Utf8),
        ("price", DataType::Decimal128(18, 4)),
        ("volume", DataType::Int64),
        ("ts", DataType::Timestamp(TimeUnit::Millisecond, None)),
        ("ok", DataType::Boolean),
        ("f", DataType::Float64),
        ("d", DataType::Date32),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![
            Some("AAPL"),
            Some("a,\"b\"\nc"),
            None,
        ])),
        Arc::new(
            Decimal128Array::from(vec![Some(1_234_500), Some(-5), None])
                .with_precision_and_scale(18, 4)
                .expect("decimal"),
        ),
        Arc::new(Int64Array::from(vec![Some(100), None, Some(-1)])),
        Arc::new(TimestampMillisecondArray::from(vec![
            Some(1_705_311_000_123),
            Some(0),
            None,
        ])),
        Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        Arc::new(Float64Array::from(vec![Some(1.5), Some(f64::NAN), None])),
        Arc::new(Date32Array::from(vec![Some(19737), Some(-1), None])),
    ];
    RecordBatch::try_new(s, columns).expect("batch")
}

#[test]
fn file_sink_writes_exact_json_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = props(&[
        ("connector", "file"),
        ("path", "out/sub/r.jsonl"),
        ("format", "json"),
    ]);
    let mut sink = create_sink("q", &p, dir.path()).expect("sink");
    assert_eq!(sink.describe(), "file out/sub/r.jsonl (json)");
    sink.write_batch(&batch()).expect("write");
    let expected = concat!(
        r#"{"symbol":"AAPL","price":123.4500,"volume":100,"ts":"2024-01-15T09:30:00.123Z","ok":true,"f":1.5,"d":"2024-01-15"}"#,
        "\n",
        r#"{"symbol":"a,\"b\"\nc","price":-0.0005,"volume":null,"ts":"1970-01-01T00:00:00.000Z","ok":false,"f":null,"d":"1969-12-31"}"#,
        "\n",
        r#"{"symbol":null,"price":null,"volume":-1,"ts":null,"ok":null,"f":null,"d":null}"#,
        "\n"
    );
    // Bytes are on disk after write_batch, before close: in the temporary file, which close
    // renames over the output.
    let temp = format!("out/sub/.r.jsonl.{}.ferris-tmp", std::process::id());
    let text = std::fs::read_to_string(dir.path().join(&temp)).expect("read");
    assert_eq!(text, expected);
    assert!(!dir.path().join("out/sub/r.jsonl").exists());
    sink.write_batch(&batch().slice(0, 1)).expect("write");
    sink.close().expect("close");
    let text = std::fs::read_to_string(dir.path().join("out/sub/r.jsonl")).expect("read");
    assert_eq!(text.lines().count(), 4);
    assert!(!dir.path().join(&temp).exists());
}

#[test]
fn file_sink_writes_exact_csv_and_truncates_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("r.csv"),
        "old content that must disappear\n".repeat(10),
    )
    .expect("write");
    let p = props(&[("connector", "file"), ("path", "r.csv")]);
    let mut sink = create_sink("q", &p, dir.path()).expect("sink");
    assert_eq!(sink.describe(), "file r.csv (csv)");
    sink.write_batch(&batch()).expect("write");
    sink.write_batch(&batch().slice(2, 1)).expect("write");
    sink.close().expect("close");
    let text = std::fs::read_to_string(dir.path().join("r.csv")).expect("read");
    assert_eq!(
        text,
        "symbol,price,volume,ts,ok,f,d\n\
         AAPL,123.4500,100,2024-01-15T09:30:00.123Z,true,1.5,2024-01-15\n\
         \"a,\"\"b\"\"\nc\",-0.0005,,1970-01-01T00:00:00.000Z,false,NaN,1969-12-31\n\
         ,,-1,,,,\n\
         ,,-1,,,,\n"
    );
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn stdout_sink_prints_json_lines_or_tables() {
    let out = Shared::default();
    let mut sink = StdoutSink::new(Box::new(out.clone()), false);
    assert_eq!(sink.describe(), "stdout (json)");
    sink.write_batch(&batch().slice(0, 1)).expect("write");
    let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
    assert_eq!(
        text,
        "{\"symbol\":\"AAPL\",\"price\":123.4500,\"volume\":100,\"ts\":\"2024-01-15T09:30:00.123Z\",\"ok\":true,\"f\":1.5,\"d\":\"2024-01-15\"}\n"
    );

    let out = Shared::default();
    let mut sink = StdoutSink::new(Box::new(out.clone()), true);
    let small = batch().project(&[0, 1, 2]).expect("project").slice(0, 2);
    sink.write_batch(&small).expect("write");
    sink.close().expect("close");
    let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
    assert_eq!(
        text,
        "+--------+----------+--------+\n\
         | symbol | price    | volume |\n\
         +--------+----------+--------+\n\
         | AAPL   | 123.4500 | 100    |\n\
         | a,\"b\"  | -0.0005  |        |\n\
         | c      |          |        |\n\
         +--------+----------+--------+\n"
    );
}

#[test]
fn blackhole_and_stdout_sinks_are_created_from_properties() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = create_sink("q", &props(&[("connector", "blackhole")]), dir.path()).expect("sink");
    assert_eq!(sink.describe(), "blackhole");
    let sink = create_sink(
        "q",
        &props(&[("connector", "stdout"), ("format", "json")]),
        dir.path(),
    )
    .expect("sink");
    assert_eq!(sink.describe(), "stdout (json)");
}
