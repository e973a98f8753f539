//! The file and stdin sources with JSON Lines.

mod common;

use arrow::datatypes::{DataType, TimeUnit};
use common::*;
use ferris_connectors::{TextFormat, create_source, stdin_source::StdinSource};
use ferris_runtime::{Reject, Source, SourcePoll};
use std::io::Write;

fn reject(position: u64, raw: &str, reason: &str) -> Reject {
    Reject::new(position, raw.as_bytes(), reason.into())
}

#[test]
fn json_lines_decode_exactly_with_rejects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = [
        r#"{"symbol":"AAPL","price":0.1,"volume":100,"ts":"2024-01-15T09:30:00.123Z"}"#,
        "",
        r#"{"symbol":"MS\"FT","price":"123.4500","volume":null,"ts":1705311000123,"extra":[1,2]}"#,
        r#"  {"symbol":"GOOG"}  "#,
        "[1,2,3]",
        r#"{"symbol": "X", "price": 1.5"#,
        r#"{"symbol":"Y","price":1.23456}"#,
        r#"{"symbol":"Z","volume":"12","ts":"2024-01-15 09:30:00"}"#,
        r#"{"sym\u0062ol":"W","price":-2.5e1,"ts":"2024-01-15T10:30:00+01:00"}"#,
        r#"{"symbol":"P","price":12345678901234.5678}"#,
        r#"{"symbol":"Q","volume":1.5}"#,
        "42",
        r#"{"symbol":{"nested":true},"price":-0.0001}"#,
    ];
    std::fs::write(dir.path().join("t.jsonl"), lines.join("\n")).expect("write");
    let p = props(&[("connector", "file"), ("path", "t.jsonl")]);
    let mut src = create_source("t", trades_schema(), &p, dir.path()).expect("source");
    let d = drain(src.as_mut(), 100);
    assert_eq!(d.positions, vec![1, 3, 4, 8, 9, 10, 13]);
    assert_eq!(
        d.rows(),
        vec![
            "AAPL|dec:1000|100|ms:1705311000123",
            "MS\"FT|dec:1234500|NULL|ms:1705311000123",
            "GOOG|NULL|NULL|NULL",
            "Z|NULL|12|ms:1705311000000",
            "W|dec:-250000|NULL|ms:1705311000000",
            "P|dec:123456789012345678|NULL|NULL",
            "{\"nested\":true}|dec:-1|NULL|NULL",
        ]
    );
    assert_eq!(
        d.rejects,
        vec![
            reject(5, "[1,2,3]", "expected a JSON object, found an array"),
            reject(
                6,
                r#"{"symbol": "X", "price": 1.5"#,
                "invalid JSON: EOF while parsing an object at line 1 column 28"
            ),
            reject(
                7,
                r#"{"symbol":"Y","price":1.23456}"#,
                "column 'price': value 1.23456 has more than 4 decimal places for DECIMAL(18,4)"
            ),
            reject(
                11,
                r#"{"symbol":"Q","volume":1.5}"#,
                "column 'volume': cannot parse '1.5' as BIGINT"
            ),
            reject(12, "42", "expected a JSON object, found a number"),
        ]
    );
}

#[test]
fn json_types_and_booleans() {
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = schema(&[
        ("b", DataType::Boolean),
        ("f", DataType::Float64),
        ("d", DataType::Date32),
        ("u", DataType::Timestamp(TimeUnit::Microsecond, None)),
        ("s", DataType::Utf8),
    ]);
    let text = "{\"b\":true,\"f\":1.25,\"d\":\"2024-01-15\",\"u\":\"2024-01-15T09:30:00.123456Z\",\"s\":\"\"}\n\
                {\"b\":\"FALSE\",\"f\":-3,\"s\":7}\n\
                {\"b\":\"maybe\"}\n";
    std::fs::write(dir.path().join("x.json"), text).expect("write");
    let p = props(&[
        ("connector", "file"),
        ("path", "x.json"),
        ("format", "json"),
    ]);
    let mut src = create_source("x", schema, &p, dir.path()).expect("source");
    let d = drain(src.as_mut(), 100);
    assert_eq!(
        d.rows(),
        vec![
            "true|1.25|days:19737|us:1705311000123456|",
            "false|-3|NULL|NULL|7"
        ]
    );
    assert_eq!(
        d.rejects,
        vec![reject(
            3,
            "{\"b\":\"maybe\"}",
            "column 'b': cannot parse 'maybe' as BOOLEAN"
        )]
    );
}

#[test]
fn json_follow_keeps_a_partial_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f.jsonl");
    std::fs::write(&path, "{\"symbol\":\"A\"}\n{\"symbol\":").expect("write");
    let p = props(&[
        ("connector", "file"),
        ("path", "f.jsonl"),
        ("follow", "true"),
    ]);
    let mut src = create_source("f", trades_schema(), &p, dir.path()).expect("source");
    let SourcePoll::Batch { positions, .. } = src.poll(10).expect("poll") else {
        panic!("expected a batch");
    };
    assert_eq!(positions, vec![1]);
    assert!(matches!(src.poll(10).expect("poll"), SourcePoll::Idle));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    f.write_all(b"\"B\"}\n\n{\"symbol\":\"C\"}\n")
        .expect("append");
    let SourcePoll::Batch {
        records,
        positions,
        rejects,
    } = src.poll(10).expect("poll")
    else {
        panic!("expected a batch");
    };
    assert_eq!(positions, vec![2, 4]);
    assert_eq!(rejects, Vec::<Reject>::new());
    assert_eq!(render_row(&records, 0), "B|NULL|NULL|NULL");
    assert!(matches!(src.poll(10).expect("poll"), SourcePoll::Idle));
}

#[test]
fn stdin_reads_json_lines() {
    let input =
        "{\"symbol\":\"A\",\"price\":1}\r\nnot json\r\n{\"symbol\":\"B\",\"price\":\"2.5\"}";
    let mut src = StdinSource::new(
        Box::new(input.as_bytes()),
        trades_schema(),
        TextFormat::Json,
    )
    .expect("src");
    let d = drain(&mut src, 100);
    assert_eq!(src.location(), "stdin");
    assert_eq!(d.positions, vec![1, 3]);
    assert_eq!(
        d.rows(),
        vec!["A|dec:10000|NULL|NULL", "B|dec:25000|NULL|NULL"]
    );
    assert_eq!(
        d.rejects,
        vec![reject(
            2,
            "not json",
            "invalid JSON: expected ident at line 1 column 2"
        )]
    );
}
